-- Create consumer_group_lease: which live process holds each member of a consumer group, and until when.

-- A member of a group (a projection or relay name) is held by one process at a time. The
-- holder renews its row while it works; a row whose expires_at has passed may be taken over.
-- group_size is the size the holder was started with: evstore refuses to start a member with
-- another size while a live lease or a member checkpoint says otherwise.
-- expires_at is ISO-8601 UTC with milliseconds and Z, so text order is time order.
CREATE TABLE consumer_group_lease (
    group_name  TEXT    NOT NULL,
    member      INTEGER NOT NULL,
    group_size  INTEGER NOT NULL,
    holder      TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    CONSTRAINT pk_consumer_group_lease PRIMARY KEY (group_name, member),
    CONSTRAINT ck_consumer_group_lease_name_length CHECK (length(group_name) BETWEEN 1 AND 200),
    CONSTRAINT ck_consumer_group_lease_member CHECK (member >= 0 AND member < group_size),
    CONSTRAINT ck_consumer_group_lease_holder_length CHECK (length(holder) BETWEEN 1 AND 200)
) STRICT;
