-- Drop subscription with its partial unique index and updated_at trigger.
DROP TRIGGER subscription_set_updated_at;
DROP TABLE subscription;
