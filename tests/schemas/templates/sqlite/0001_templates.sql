-- Create prompt templates, their versions and results: a second schema to prove parity serves any folders.

CREATE TABLE prompt_template (
    template_id  INTEGER NOT NULL CONSTRAINT pk_prompt_template PRIMARY KEY AUTOINCREMENT,
    workspace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    is_public    INTEGER NOT NULL DEFAULT 0,
    status       TEXT    NOT NULL DEFAULT 'draft',
    deleted_at   TEXT,
    CONSTRAINT ck_prompt_template_status CHECK (status IN ('draft', 'live', 'retired')),
    CONSTRAINT ck_prompt_template_is_public_boolean CHECK (is_public IN (0, 1))
) STRICT;

CREATE UNIQUE INDEX ux_prompt_template_workspace_name_active
    ON prompt_template (workspace, name) WHERE deleted_at IS NULL;

CREATE TABLE prompt_version (
    version_id   INTEGER NOT NULL CONSTRAINT pk_prompt_version PRIMARY KEY AUTOINCREMENT,
    template_id  INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    CONSTRAINT fk_prompt_version_template FOREIGN KEY (template_id)
        REFERENCES prompt_template (template_id) ON DELETE CASCADE
) STRICT;

CREATE TABLE prompt_result (
    result_id    INTEGER NOT NULL CONSTRAINT pk_prompt_result PRIMARY KEY AUTOINCREMENT,
    version_id   INTEGER,
    score        REAL    NOT NULL,
    CONSTRAINT ck_prompt_result_score CHECK (score BETWEEN 0 AND 1),
    CONSTRAINT fk_prompt_result_version FOREIGN KEY (version_id)
        REFERENCES prompt_version (version_id) ON DELETE SET NULL
) STRICT;
