-- Drop the triggers that keep stream heads in step with the log.
DROP TRIGGER stream_check_insert;
DROP TRIGGER stream_reject_delete;
DROP TRIGGER stream_reject_rewind;
