-- Drop the triggers that keep stream heads in step with the log, and their functions.
DROP TRIGGER stream_reject_truncate ON stream;
DROP TRIGGER stream_reject_delete ON stream;
DROP TRIGGER stream_reject_rewind ON stream;
DROP FUNCTION stream_reject_delete();
DROP FUNCTION stream_reject_rewind();
