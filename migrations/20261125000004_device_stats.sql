-- A second read model, added after the first: device counts per tenant, model and status
-- (GET /v1/stats). Filled from the whole event store on the first start of a worker that has
-- it, then kept up to date from the stream. `device_stats_members` is each device's place in
-- the counts (and its version, which makes applying an event twice a no-op).
CREATE TABLE device_stats_members
(
    id              uuid    PRIMARY KEY,
    tenant          text    NOT NULL,
    model           text    NOT NULL,
    status          text    NOT NULL,
    has_certificate boolean NOT NULL,
    version         bigint  NOT NULL
);

CREATE TABLE device_stats
(
    tenant  text   NOT NULL,
    model   text   NOT NULL,
    status  text   NOT NULL,
    devices bigint NOT NULL,
    PRIMARY KEY (tenant, model, status)
);
