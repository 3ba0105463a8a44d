-- Drop stream with its updated_at trigger and function.
DROP TRIGGER stream_set_updated_at ON stream;
DROP FUNCTION stream_set_updated_at();
DROP TABLE stream;
