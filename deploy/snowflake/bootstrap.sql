-- tokenwatch on Snowflake: the one-time setup of database, schemas, warehouses, roles and users.
--
-- Run once by an administrator who holds SECURITYADMIN and SYSADMIN (never ACCOUNTADMIN), e.g.
--   snowsql -f deploy/snowflake/bootstrap.sql
-- Idempotent: every object is `create ... if not exists` and every grant can be repeated, so
-- running it again after an upgrade brings an existing account in line. Nothing in this file
-- is secret: the users have no password (TYPE = SERVICE: key-pair only); register each user's
-- public key afterwards (see "Users" at the end).
-- tests/deploy/test_snowflake_bootstrap.py runs it on fakesnow and checks the least-privilege
-- rules below statically.
--
-- Names are the project's defaults: database TOKENWATCH (TOKENWATCH_SNOWFLAKE_DATABASE), raw
-- layer RAW (TOKENWATCH_RAW_SCHEMA), dbt's schemas ANALYTICS_<+schema> (TOKENWATCH_DBT_SCHEMA
-- = analytics, dbt_project/dbt_project.yml), role TRANSFORMER and warehouse TRANSFORMING
-- (dbt_project/profiles.yml). If the account already has roles named LOADER, TRANSFORMER, ...
-- for another project, rename them here first: `create role if not exists` would adopt them.
--
-- Roles (each also granted to SYSADMIN, so SYSADMIN can manage what they own):
--   LOADER       ingestion (`tokenwatch ingest`, `tokenwatch audit checkpoint`): writes RAW only
--   TRANSFORMER  dbt, the quality gate and the publication: reads RAW, owns the ANALYTICS_*
--                schemas and QUALITY
--   PIPELINE     the Dagster pipeline, which loads, builds, gates, publishes and writes the
--                audit pack in one process with one Snowflake identity: LOADER + TRANSFORMER,
--                and reads the reports API's access log for the audit pack
--   REPORTER     the reports API (TOKENWATCH_SNOWFLAKE_ROLE of `tokenwatch reports serve`):
--                reads the marts and the gate's verdicts, writes its access log in REPORTS
--   ANALYST      analysts and Tableau: ANALYTICS_PUBLISHED only (the days the gate passed),
--                never a build schema (TOKENWATCH_ANALYST_ROLES)
--   COMPLIANCE   compliance officers: ANALYTICS_COMPLIANCE only (TOKENWATCH_COMPLIANCE_ROLES)
--
-- Snowflake authorizes CREATE ... IF NOT EXISTS before it looks whether the object exists, so
-- the application asks first: it uses the database and the schemas made here and never
-- issues CREATE DATABASE or CREATE SCHEMA once they exist (SnowflakeWarehouse.open and
-- ensure_named_schema; tests/ingestion/test_snowflake_settings.py). LOADER and REPORTER
-- therefore need neither privilege, and get neither.
--
-- The pipeline's user runs with TOKENWATCH_SNOWFLAKE_ROLE unset: ingestion, the gate, publish
-- and the audit pack use its default role PIPELINE, dbt its profile's default TRANSFORMER, so
-- dbt's tables are TRANSFORMER's and a dbt run by hand as TRANSFORMER can replace them. (Set to
-- PIPELINE, dbt's tables would be PIPELINE's, which TRANSFORMER alone cannot replace.)
--
-- Not here (ACCOUNTADMIN or the platform's own process): resource monitors on the warehouses,
-- network policies, and human users (SSO/SCIM), who are granted ANALYST or COMPLIANCE.


-- == Roles ===================================================================================
use role SECURITYADMIN;

create role if not exists LOADER comment = 'tokenwatch ingestion: writes TOKENWATCH.RAW only';
create role if not exists TRANSFORMER comment = 'tokenwatch dbt, gate, publication: reads RAW, owns ANALYTICS_* and QUALITY';
create role if not exists PIPELINE comment = 'tokenwatch Dagster pipeline: LOADER + TRANSFORMER in one identity';
create role if not exists REPORTER comment = 'tokenwatch reports API: reads the marts and verdicts, writes REPORTS';
create role if not exists ANALYST comment = 'tokenwatch analysts, Tableau: reads ANALYTICS_PUBLISHED only';
create role if not exists COMPLIANCE comment = 'tokenwatch compliance officers: reads ANALYTICS_COMPLIANCE only';

-- every custom role rolls up to SYSADMIN: it can then manage (drop, alter) what they own
grant role LOADER to role SYSADMIN;
grant role TRANSFORMER to role SYSADMIN;
grant role PIPELINE to role SYSADMIN;
grant role REPORTER to role SYSADMIN;
grant role ANALYST to role SYSADMIN;
grant role COMPLIANCE to role SYSADMIN;
-- the pipeline loads (ingestion assets, the audit checkpoint) in the process that builds
grant role LOADER to role PIPELINE;
-- ... and builds, gates and publishes (dbt, quality.verdicts, reporting.published)
grant role TRANSFORMER to role PIPELINE;


-- == Warehouses ==============================================================================
-- One per workload, so a long dbt build never queues an analyst and costs show per workload.
use role SYSADMIN;

create warehouse if not exists LOADING
  warehouse_size = xsmall auto_suspend = 60 auto_resume = true initially_suspended = true
  comment = 'tokenwatch ingestion (LOADER)';
create warehouse if not exists TRANSFORMING
  warehouse_size = xsmall auto_suspend = 60 auto_resume = true initially_suspended = true
  comment = 'tokenwatch dbt, gate, publication (TRANSFORMER, PIPELINE)';
create warehouse if not exists REPORTING
  warehouse_size = xsmall auto_suspend = 60 auto_resume = true initially_suspended = true
  comment = 'tokenwatch reports API, analysts, compliance (REPORTER, ANALYST, COMPLIANCE)';


-- == Database and schemas ====================================================================
-- Owned by SYSADMIN. Permanent (not transient): the compliance marts must stay 12 months and
-- keep Fail-safe (README, "Retention"). dbt-snowflake still creates its tables TRANSIENT unless
-- a model sets `+transient: false`, which dbt_project.yml does not do yet.
create database if not exists TOKENWATCH comment = 'tokenwatch reporting warehouse';

-- Landing schemas, owned by SYSADMIN; managed access: the roles that create tables there
-- (LOADER, REPORTER) cannot grant them to anyone, only SYSADMIN and SECURITYADMIN can.
create schema if not exists TOKENWATCH.RAW comment = 'raw layer, written by ingestion (ingestion/raw_schema.py)';
alter schema TOKENWATCH.RAW enable managed access;
create schema if not exists TOKENWATCH.REPORTS comment = 'the reports API access log (reporting/api/access_log.py)';
alter schema TOKENWATCH.REPORTS enable managed access;

-- Schemas TRANSFORMER owns: dbt's (one per +schema in dbt_project.yml), the gate's verdicts and
-- the analyst-facing copy. Created here (not by the first dbt run) so the readers' future
-- grants below exist before the first table does.
create schema if not exists TOKENWATCH.QUALITY comment = 'quality gate verdicts per day (quality/verdicts.py)';
create schema if not exists TOKENWATCH.ANALYTICS_STAGING comment = 'dbt staging views (build)';
create schema if not exists TOKENWATCH.ANALYTICS_INTERMEDIATE comment = 'dbt intermediate models (build)';
create schema if not exists TOKENWATCH.ANALYTICS_SEMANTIC comment = 'dbt semantic layer time spines (build)';
create schema if not exists TOKENWATCH.ANALYTICS_WALLET comment = 'dbt wallet marts (build, before the gate)';
create schema if not exists TOKENWATCH.ANALYTICS_LIFECYCLE comment = 'dbt lifecycle marts (build, before the gate)';
create schema if not exists TOKENWATCH.ANALYTICS_COMPLIANCE comment = 'dbt compliance (audit) marts, every day';
create schema if not exists TOKENWATCH.ANALYTICS_REFERENCE comment = 'dbt seeds';
create schema if not exists TOKENWATCH.ANALYTICS_SNAPSHOTS comment = 'dbt snapshots';
create schema if not exists TOKENWATCH.ANALYTICS_PUBLISHED comment = 'the days the quality gate passed, for analysts (reporting/published.py)';

-- TRANSFORMER owns its schemas: dbt replaces their tables, the gate and publish create theirs
grant ownership on schema TOKENWATCH.QUALITY to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_STAGING to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_INTERMEDIATE to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_SEMANTIC to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_WALLET to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_LIFECYCLE to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_COMPLIANCE to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_REFERENCE to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_SNAPSHOTS to role TRANSFORMER copy current grants;
grant ownership on schema TOKENWATCH.ANALYTICS_PUBLISHED to role TRANSFORMER copy current grants;


-- == Privileges ==============================================================================
-- SECURITYADMIN (MANAGE GRANTS) grants on objects it does not own, future grants included.
-- "all ... in schema" covers the tables there now (a re-run after the first load), "future
-- ... in schema" every table created later, dbt's replaced tables included.
use role SECURITYADMIN;

-- -- LOADER: RAW and nothing else ------------------------------------------------------------
-- to run its queries (auto-resume needs USAGE only, not OPERATE)
grant usage on warehouse LOADING to role LOADER;
-- to resolve TOKENWATCH.RAW (USAGE only: no CREATE SCHEMA; tokenwatch never creates one that exists)
grant usage on database TOKENWATCH to role LOADER;
-- to resolve the raw tables
grant usage on schema TOKENWATCH.RAW to role LOADER;
-- the raw tables (ensure_schema), the transient staging tables _load_<session>_* (dropped on
-- close) and the temporary session stage _tokenwatch_load that batches are PUT to (no named
-- stage outlives a session, so none is created here)
grant create table, create stage on schema TOKENWATCH.RAW to role LOADER;
-- keyed loads read existing keys, append rows, move the load counter (update) and replace
-- watermarks (delete + insert in _ingest_state); no truncate, no ownership of others' tables
grant select, insert, update, delete on all tables in schema TOKENWATCH.RAW to role LOADER;
grant select, insert, update, delete on future tables in schema TOKENWATCH.RAW to role LOADER;

-- -- TRANSFORMER: reads RAW, owns its schemas (above) ----------------------------------------
-- dbt's profile default warehouse
grant usage on warehouse TRANSFORMING to role TRANSFORMER;
-- dbt creates a schema when a new +schema appears; nothing else on the database
grant usage, create schema on database TOKENWATCH to role TRANSFORMER;
-- dbt's sources are the raw tables (read only: dbt never writes RAW)
grant usage on schema TOKENWATCH.RAW to role TRANSFORMER;
grant select on all tables in schema TOKENWATCH.RAW to role TRANSFORMER;
grant select on future tables in schema TOKENWATCH.RAW to role TRANSFORMER;

-- -- PIPELINE: LOADER + TRANSFORMER (role grants above), plus the audit pack's read ----------
-- the daily audit pack reads the reports API's access records (reports.access_log); PIPELINE
-- gets no warehouse, database or write of its own: LOADER's and TRANSFORMER's are enough
grant usage on schema TOKENWATCH.REPORTS to role PIPELINE;
grant select on all tables in schema TOKENWATCH.REPORTS to role PIPELINE;
grant select on future tables in schema TOKENWATCH.REPORTS to role PIPELINE;

-- -- REPORTER: the marts and the verdicts, read only; its own access log ---------------------
-- to run its queries (shared with the people who read reports)
grant usage on warehouse REPORTING to role REPORTER;
-- to resolve its schemas below (no CREATE SCHEMA: tokenwatch never creates one that exists)
grant usage on database TOKENWATCH to role REPORTER;
-- the API queries the build marts and leaves out withheld days itself (reporting/api/app.py)
grant usage on schema TOKENWATCH.ANALYTICS_WALLET to role REPORTER;
grant select on all tables in schema TOKENWATCH.ANALYTICS_WALLET to role REPORTER;
grant select on future tables in schema TOKENWATCH.ANALYTICS_WALLET to role REPORTER;
grant select on all views in schema TOKENWATCH.ANALYTICS_WALLET to role REPORTER;
grant select on future views in schema TOKENWATCH.ANALYTICS_WALLET to role REPORTER;
-- token timelines and the lifecycle metrics
grant usage on schema TOKENWATCH.ANALYTICS_LIFECYCLE to role REPORTER;
grant select on all tables in schema TOKENWATCH.ANALYTICS_LIFECYCLE to role REPORTER;
grant select on future tables in schema TOKENWATCH.ANALYTICS_LIFECYCLE to role REPORTER;
grant select on all views in schema TOKENWATCH.ANALYTICS_LIFECYCLE to role REPORTER;
grant select on future views in schema TOKENWATCH.ANALYTICS_LIFECYCLE to role REPORTER;
-- the audit_findings metric (audit_daily_summary) and the marts' build time (transformed_at)
grant usage on schema TOKENWATCH.ANALYTICS_COMPLIANCE to role REPORTER;
grant select on all tables in schema TOKENWATCH.ANALYTICS_COMPLIANCE to role REPORTER;
grant select on future tables in schema TOKENWATCH.ANALYTICS_COMPLIANCE to role REPORTER;
grant select on all views in schema TOKENWATCH.ANALYTICS_COMPLIANCE to role REPORTER;
grant select on future views in schema TOKENWATCH.ANALYTICS_COMPLIANCE to role REPORTER;
-- each day's gate verdict: without it the API could not leave withheld days out
grant usage on schema TOKENWATCH.QUALITY to role REPORTER;
grant select on all tables in schema TOKENWATCH.QUALITY to role REPORTER;
grant select on future tables in schema TOKENWATCH.QUALITY to role REPORTER;
-- the API creates reports.access_log on first use and appends to it
grant usage, create table on schema TOKENWATCH.REPORTS to role REPORTER;
-- Not RAW: the API's "last load" freshness reads raw._ingest_state and shows null without it.
-- To show it, after the first load: grant select on table TOKENWATCH.RAW._INGEST_STATE to role REPORTER;

-- -- ANALYST: the published days, nothing of the build ---------------------------------------
-- to run their queries and Tableau's
grant usage on warehouse REPORTING to role ANALYST;
-- to resolve ANALYTICS_PUBLISHED, the only schema they see
grant usage on database TOKENWATCH to role ANALYST;
grant usage on schema TOKENWATCH.ANALYTICS_PUBLISHED to role ANALYST;
-- the gated copy of the marts; publish recreates a table when its mart changes shape, and the
-- future grant covers the new one (TOKENWATCH_ANALYST_ROLES can stay empty)
grant select on all tables in schema TOKENWATCH.ANALYTICS_PUBLISHED to role ANALYST;
grant select on future tables in schema TOKENWATCH.ANALYTICS_PUBLISHED to role ANALYST;
grant select on all views in schema TOKENWATCH.ANALYTICS_PUBLISHED to role ANALYST;
grant select on future views in schema TOKENWATCH.ANALYTICS_PUBLISHED to role ANALYST;

-- -- COMPLIANCE: the audit marts, every day (withheld ones included) -------------------------
-- Leave TOKENWATCH_COMPLIANCE_ROLES empty on Snowflake: these future grants replace dbt's
-- +grants, which on each incremental run revoke SELECT from every role they do not name
-- (REPORTER's here), and whose on-run-end `grant usage on database` TRANSFORMER may not run.
-- to run their queries
grant usage on warehouse REPORTING to role COMPLIANCE;
-- to resolve ANALYTICS_COMPLIANCE, the only schema they see
grant usage on database TOKENWATCH to role COMPLIANCE;
grant usage on schema TOKENWATCH.ANALYTICS_COMPLIANCE to role COMPLIANCE;
-- every audit mart, now and as dbt (re)builds them
grant select on all tables in schema TOKENWATCH.ANALYTICS_COMPLIANCE to role COMPLIANCE;
grant select on future tables in schema TOKENWATCH.ANALYTICS_COMPLIANCE to role COMPLIANCE;
grant select on all views in schema TOKENWATCH.ANALYTICS_COMPLIANCE to role COMPLIANCE;
grant select on future views in schema TOKENWATCH.ANALYTICS_COMPLIANCE to role COMPLIANCE;


-- == Users ===================================================================================
-- Service users: no password, no MFA prompt; they sign in with a key pair only. After this
-- script, register each public key (the private key stays with the service, in
-- TOKENWATCH_SNOWFLAKE_PRIVATE_KEY_PATH):
--   alter user TOKENWATCH_LOADER set rsa_public_key = '<public key, PEM body>';
use role SECURITYADMIN;

create user if not exists TOKENWATCH_LOADER type = service
  default_role = LOADER default_warehouse = LOADING default_namespace = TOKENWATCH.RAW
  comment = 'tokenwatch ingest, tokenwatch audit checkpoint';
-- its only role
grant role LOADER to user TOKENWATCH_LOADER;

-- TOKENWATCH_SNOWFLAKE_ROLE unset for the pipeline: ingestion, the gate and publish use this
-- default role, dbt its profile's TRANSFORMER (which PIPELINE holds)
create user if not exists TOKENWATCH_PIPELINE type = service
  default_role = PIPELINE default_warehouse = TRANSFORMING default_namespace = TOKENWATCH
  comment = 'tokenwatch Dagster pipeline';
-- its only role (LOADER and TRANSFORMER come with it)
grant role PIPELINE to user TOKENWATCH_PIPELINE;

create user if not exists TOKENWATCH_REPORTER type = service
  default_role = REPORTER default_warehouse = REPORTING default_namespace = TOKENWATCH
  comment = 'tokenwatch reports API';
-- its only role
grant role REPORTER to user TOKENWATCH_REPORTER;
