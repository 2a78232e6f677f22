-- Least privilege (issue 12): this database's defaults stop granting PUBLIC (every role on
-- the cluster) what the application's roles must not have.
--
-- The roles themselves are cluster-wide, so they are not made here: state_service/migrate.py
-- creates them on every run (race-safe across databases, passwords from the environment),
-- before the pending migrations, and after them hands every object of the schema to
-- tokenwatch_owner and re-applies the service's and the reader's grants from
-- state_service/roles.py. That file is the one place the grants are kept: a migration that
-- adds a column the service moves on a transition adds its name to roles.TRANSITION_COLUMNS.
--
--   tokenwatch_owner    NOLOGIN, owns the tables, sequences and functions
--   tokenwatch_service  LOGIN, SELECT + INSERT on tokens and token_state_transitions,
--                       UPDATE (state, version, last_hash, updated_at) on tokens,
--                       USAGE on the log's identity sequence
--   tokenwatch_reader   LOGIN, SELECT on the schema's tables

-- No DDL in the schema for anyone but its owner (PostgreSQL 15's default; older clusters and
-- upgraded databases still grant it).
revoke create on schema public from public;

-- No new schemas and no temporary tables in this database; CONNECT is granted to the
-- application's roles by name (migrate.py), PUBLIC keeps its default CONNECT so the admin
-- never locks itself out.
do $$
begin
    execute format('revoke create, temporary on database %I from public', current_database());
end
$$;
