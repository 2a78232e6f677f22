-- Seals the database's writers cannot forge (state_service/chain.py, "Seals"):
--   row_mac   HMAC-SHA256, under the key named by key_id, of the row's own content (every
--             column but the plain chain's prev_hash/row_hash, which it complements);
--   attrs_mac HMAC-SHA256 of a token's fixed attributes (wallet, network, type, card_ref).
-- The keys live outside PostgreSQL (TOKENWATCH_CHAIN_KEYS); a row written before this
-- migration has no seal, and `tokenwatch audit verify` reports it as unsealed.
alter table token_state_transitions add column key_id text, add column row_mac char(64);
alter table tokens add column key_id text, add column attrs_mac char(64);
