-- Create subscription, the named checkpoints of readers and projections, soft-deleted with deleted_at.

CREATE TABLE subscription (
    subscription_id  bigint      GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME subscription_subscription_id_seq),
    name             text        NOT NULL,
    position         bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    CONSTRAINT pk_subscription PRIMARY KEY (subscription_id),
    CONSTRAINT ck_subscription_name_length CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT ck_subscription_position_not_negative CHECK (position >= 0)
);

-- One active subscription per name; soft-deleted rows keep their history under the same name.
CREATE UNIQUE INDEX ux_subscription_name_active ON subscription (name) WHERE deleted_at IS NULL;

CREATE FUNCTION subscription_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER subscription_set_updated_at
    BEFORE UPDATE ON subscription
    FOR EACH ROW EXECUTE FUNCTION subscription_set_updated_at();
