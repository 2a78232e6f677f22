-- Refused requests at the service's front door (PCI DSS 10.2.1.4, invalid logical access
-- attempts): state_service/guard.py counts every 401 and 403, and state_service/auth_failures.py
-- writes the counts here, one row per minute, status, method, path and client address (a flood
-- of bad keys adds to a row's attempts, not rows). The path is stored with the PAN rule's
-- redaction (tokenwatch/pan.py) and cut to 200 characters: a path is the caller's text.
-- The service may insert and add to attempts; the reader (the audit pack) may read.
create table auth_failures (
    minute      timestamptz not null,
    status      smallint    not null,
    method      text        not null,
    path        text        not null,
    client      text        not null,
    attempts    bigint      not null,
    first_at    timestamptz not null,
    last_at     timestamptz not null,
    primary key (minute, status, method, path, client)
);
