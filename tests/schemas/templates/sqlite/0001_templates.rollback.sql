-- Drop the prompt template tables.
DROP TABLE prompt_result;
DROP TABLE prompt_version;
DROP TABLE prompt_template;
