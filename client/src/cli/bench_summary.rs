//! The summary of `harp bench sync`'s rounds, and the table it prints without `--json`.
//!
//! Each figure is summarised by its median over the rounds, with its lowest and highest
//! values beside it; a ratio (Harp to Syncthing, the new file to the raw stream) is taken
//! within each round first, so that both sides of it were measured minutes apart at most,
//! and then summarised the same way. Peak RSS is summarised by its highest value too,
//! because its aim is a bound.

use serde_json::{Value, json};

/// Median, lowest and highest of `values` (`null` when there are none).
fn spread(mut values: Vec<f64>) -> Value {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return Value::Null;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    json!({"median": median, "min": values[0], "max": values[n - 1], "all": values})
}

/// The scenario called `name` in a list of scenario reports.
fn scenario<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|s| s["scenario"].as_str() == Some(name))
}

/// One tool's figures for one scenario, over the rounds.
fn figures(of_rounds: &[Option<&Value>]) -> Value {
    let field = |key: &str| {
        spread(
            of_rounds
                .iter()
                .flatten()
                .filter_map(|s| s[key].as_f64())
                .collect(),
        )
    };
    json!({
        "seconds": field("seconds"),
        "wire_bytes": field("wire_bytes"),
        "cpu_seconds": field("cpu_seconds"),
        "peak_rss_bytes": field("peak_rss_bytes"),
    })
}

/// The summary of `rounds` (each as `one_round` reports it): per scenario, Harp's figures,
/// Syncthing's, and the ratios of each round.
pub(super) fn summary(rounds: &[Value]) -> Value {
    let names: Vec<String> = rounds
        .first()
        .and_then(|r| r["scenarios"].as_array())
        .map(|list| {
            list.iter()
                .filter_map(|s| s["scenario"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let scenarios: Vec<Value> = names
        .iter()
        .map(|name| {
            let harp: Vec<Option<&Value>> = rounds
                .iter()
                .map(|r| scenario(&r["scenarios"], name))
                .collect();
            let syncthing: Vec<Option<&Value>> = rounds
                .iter()
                .map(|r| scenario(&r["syncthing"]["scenarios"], name))
                .collect();
            let ratio = |h: &Option<&Value>, s: &Option<&Value>| {
                Some(h.as_ref()?["seconds"].as_f64()? / s.as_ref()?["seconds"].as_f64()?)
            };
            let to_syncthing: Vec<f64> = harp
                .iter()
                .zip(&syncthing)
                .filter_map(|(h, s)| ratio(h, s))
                .collect();
            let to_raw: Vec<f64> = harp
                .iter()
                .flatten()
                .filter_map(|h| h["ratio_to_raw_stream"].as_f64())
                .collect();
            json!({
                "scenario": name,
                "harp": figures(&harp),
                "syncthing": figures(&syncthing),
                "ratio_to_syncthing": spread(to_syncthing),
                "ratio_to_raw_stream": spread(to_raw),
            })
        })
        .collect();
    json!({
        "rounds": rounds.len(),
        "raw_libp2p_stream_seconds": spread(
            rounds
                .iter()
                .filter_map(|r| r["raw_libp2p_stream_seconds"].as_f64())
                .collect()
        ),
        "scenarios": scenarios,
    })
}

/// The report as a table: one line per scenario and tool, medians over the rounds (the
/// range in brackets when there is more than one round).
pub(super) fn table(report: &Value) -> String {
    let summary = &report["summary"];
    let several = summary["rounds"].as_u64().unwrap_or(0) > 1;
    let show = |v: &Value, scale: f64, digits: usize| -> String {
        let at = |k: &str| v[k].as_f64().map(|x| x / scale);
        match (at("median"), at("min"), at("max")) {
            (Some(m), Some(lo), Some(hi)) if several => {
                format!("{m:.digits$} [{lo:.digits$}-{hi:.digits$}]")
            }
            (Some(m), ..) => format!("{m:.digits$}"),
            _ => "-".to_owned(),
        }
    };
    let mut out = format!(
        "harp bench sync: {} round(s), {} MiB file, {} small files, {} on {}\n\
         raw libp2p stream: {} s\n\n",
        summary["rounds"],
        report["size_bytes"].as_u64().unwrap_or(0) >> 20,
        report["small_files"],
        report["transport"].as_str().unwrap_or("?"),
        report["file_system"].as_str().unwrap_or("?"),
        show(&summary["raw_libp2p_stream_seconds"], 1.0, 2),
    );
    out.push_str(&format!(
        "{:<16} {:<10} {:>22} {:>22} {:>16} {:>16}\n",
        "scenario", "tool", "seconds", "wire KB", "CPU s", "peak RSS MB"
    ));
    for s in summary["scenarios"].as_array().into_iter().flatten() {
        for tool in ["harp", "syncthing"] {
            let f = &s[tool];
            if f["seconds"].is_null() {
                continue;
            }
            out.push_str(&format!(
                "{:<16} {:<10} {:>22} {:>22} {:>16} {:>16}\n",
                s["scenario"].as_str().unwrap_or("?"),
                tool,
                show(&f["seconds"], 1.0, 2),
                show(&f["wire_bytes"], 1e3, 0),
                show(&f["cpu_seconds"], 1.0, 1),
                show(&f["peak_rss_bytes"], 1e6, 0),
            ));
        }
        for (key, label) in [
            ("ratio_to_syncthing", "Harp/ST"),
            ("ratio_to_raw_stream", "Harp/raw"),
        ] {
            if !s[key].is_null() {
                out.push_str(&format!(
                    "{:<16} {:<10} {:>22}\n",
                    "",
                    label,
                    show(&s[key], 1.0, 2)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(harp: &[(&str, f64)], syncthing: &[(&str, f64)], raw: f64) -> Value {
        let list = |l: &[(&str, f64)]| -> Value {
            l.iter()
                .map(|(n, s)| {
                    json!({"scenario": n, "seconds": s, "wire_bytes": 10.0 * s,
                           "cpu_seconds": 2.0 * s, "peak_rss_bytes": 1e6 * s})
                })
                .collect()
        };
        let mut scenarios = list(harp);
        scenarios[0]["ratio_to_raw_stream"] = json!(harp[0].1 / raw);
        json!({
            "raw_libp2p_stream_seconds": raw,
            "scenarios": scenarios,
            "syncthing": {"scenarios": list(syncthing)},
        })
    }

    #[test]
    fn ratios_are_taken_within_each_round_then_summarised_by_their_median() {
        // The host halves its speed in round 2: each round's ratio is 0.5, 0.5, 0.4 (median
        // 0.5), while the ratio of the median times (3 / 7.5) would say 0.4.
        let rounds = [
            round(
                &[("new", 2.0), ("small", 1.0)],
                &[("new", 4.0), ("small", 10.0)],
                2.0,
            ),
            round(
                &[("new", 4.0), ("small", 2.0)],
                &[("new", 8.0), ("small", 20.0)],
                4.0,
            ),
            round(
                &[("new", 3.0), ("small", 1.0)],
                &[("new", 7.5), ("small", 5.0)],
                2.0,
            ),
        ];
        let s = summary(&rounds);
        assert_eq!(s["rounds"], 3);
        let new = &s["scenarios"][0];
        assert_eq!(new["scenario"], "new");
        assert_eq!(new["ratio_to_syncthing"]["median"], 0.5);
        assert_eq!(new["ratio_to_syncthing"]["min"], 0.4);
        assert_eq!(new["ratio_to_syncthing"]["all"], json!([0.4, 0.5, 0.5]));
        assert_eq!(new["ratio_to_raw_stream"]["median"], 1.0);
        assert_eq!(new["ratio_to_raw_stream"]["max"], 1.5);
        assert_eq!(new["harp"]["seconds"]["median"], 3.0);
        assert_eq!(new["syncthing"]["seconds"]["max"], 8.0);
        assert_eq!(new["harp"]["peak_rss_bytes"]["max"], 4e6);
        let small = &s["scenarios"][1];
        assert_eq!(small["ratio_to_syncthing"]["median"], 0.1);
        assert_eq!(small["ratio_to_syncthing"]["max"], 0.2);
        assert!(small["ratio_to_raw_stream"].is_null());
        assert_eq!(s["raw_libp2p_stream_seconds"]["median"], 2.0);
    }

    #[test]
    fn an_even_count_takes_the_mean_of_the_middle_two_and_a_skipped_tool_has_no_ratio() {
        let mut rounds = vec![
            round(&[("new", 2.0)], &[("new", 4.0)], 2.0),
            round(&[("new", 3.0)], &[("new", 4.0)], 2.0),
        ];
        assert_eq!(
            summary(&rounds)["scenarios"][0]["harp"]["seconds"]["median"],
            2.5
        );
        for r in &mut rounds {
            r["syncthing"] = json!({"skipped": "--no-syncthing"});
        }
        let s = summary(&rounds);
        assert!(s["scenarios"][0]["ratio_to_syncthing"].is_null(), "{s}");
        assert!(s["scenarios"][0]["syncthing"]["seconds"].is_null(), "{s}");
        let table = table(&json!({"summary": s, "size_bytes": 2 << 20}));
        assert!(table.contains("harp"), "{table}");
        assert!(!table.contains("syncthing "), "{table}");
        assert!(table.contains("2.50 [2.00-3.00]"), "{table}");
    }
}
