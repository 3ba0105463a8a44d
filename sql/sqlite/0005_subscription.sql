-- Create subscription, the named checkpoints of readers and projections, soft-deleted with deleted_at.

CREATE TABLE subscription (
    subscription_id  INTEGER NOT NULL CONSTRAINT pk_subscription PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL,
    position         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    deleted_at       TEXT,
    CONSTRAINT ck_subscription_name_length CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT ck_subscription_position_not_negative CHECK (position >= 0)
) STRICT;

-- One active subscription per name; soft-deleted rows keep their history under the same name.
CREATE UNIQUE INDEX ux_subscription_name_active ON subscription (name) WHERE deleted_at IS NULL;

CREATE TRIGGER subscription_set_updated_at
    AFTER UPDATE ON subscription
    FOR EACH ROW
BEGIN
    UPDATE subscription SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE subscription_id = NEW.subscription_id;
END;
