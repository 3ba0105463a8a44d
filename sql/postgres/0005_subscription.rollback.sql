-- Drop subscription with its partial unique index, updated_at trigger and function.
DROP TRIGGER subscription_set_updated_at ON subscription;
DROP FUNCTION subscription_set_updated_at();
DROP TABLE subscription;
