-- Chunk tags: the keyed BLAKE3 of each chunk's plaintext (the source of its blob's nonce), so
-- that a rescan of a changed file maps chunks it already knows to their ids without
-- encrypting them again. NULL for rows written before this column (they are re-sealed once).
ALTER TABLE chunk ADD COLUMN tag BLOB;
