-- Drop stream with its updated_at trigger.
DROP TRIGGER stream_set_updated_at;
DROP TABLE stream;
