//! `harp relay`: a public node for a VPS: circuit relay v2 server (peers that cannot reach each
//! other directly meet here, and hole punching starts from here), Kademlia server, AutoNAT
//! server. It never sees file contents: relayed chunk streams are end-to-end encrypted (Noise
//! between the two peers, and the blobs themselves).

use std::process::ExitCode;

use libp2p::Multiaddr;
use libp2p::core::multiaddr::Protocol;

use crate::net;

/// Arguments of `harp relay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Addresses to listen on (repeat). Default: UDP/QUIC and TCP on port 4001, all interfaces.
    #[arg(long = "listen", value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
}

/// Runs `harp relay` until interrupted.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let listen = if args.listen.is_empty() {
        vec![
            "/ip4/0.0.0.0/udp/4001/quic-v1".parse()?,
            "/ip4/0.0.0.0/tcp/4001".parse()?,
        ]
    } else {
        args.listen.clone()
    };
    let config = net::Config {
        listen,
        relays: Vec::new(),
        mdns: false,
        relay_server: true,
        hole_punching: false,
        idle_timeout: std::time::Duration::from_secs(300),
        // A relay serves no chunks.
        bulk_lanes: false,
        ..net::Config::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (handle, event_loop) = net::start(net::keypair(node.device.to_bytes())?, &config)?;
        let task = tokio::spawn(event_loop.run());
        // Print the addresses once they are bound, for clients' `relays` setting.
        let mut shown = Vec::new();
        for _ in 0..50 {
            for a in handle.listen_addrs().await? {
                if !shown.contains(&a) {
                    println!(
                        "relay listening on {}",
                        a.clone().with(Protocol::P2p(handle.peer_id))
                    );
                    shown.push(a);
                }
            }
            if shown.len() >= config.listen.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::signal::ctrl_c().await?;
        drop(handle);
        let _ = task.await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
