-- Create prompt templates, their versions and results: a second schema to prove parity serves any folders.

CREATE TABLE prompt_template (
    template_id  bigint      GENERATED ALWAYS AS IDENTITY,
    workspace    text        NOT NULL,
    name         text        NOT NULL,
    is_public    boolean     NOT NULL DEFAULT false,
    status       text        NOT NULL DEFAULT 'draft',
    deleted_at   timestamptz,
    CONSTRAINT pk_prompt_template PRIMARY KEY (template_id),
    CONSTRAINT ck_prompt_template_status CHECK (status IN ('draft', 'live', 'retired'))
);

CREATE UNIQUE INDEX ux_prompt_template_workspace_name_active
    ON prompt_template (workspace, name) WHERE deleted_at IS NULL;

CREATE TABLE prompt_version (
    version_id   bigint      GENERATED ALWAYS AS IDENTITY,
    template_id  bigint      NOT NULL,
    body         text        NOT NULL,
    CONSTRAINT pk_prompt_version PRIMARY KEY (version_id),
    CONSTRAINT fk_prompt_version_template FOREIGN KEY (template_id)
        REFERENCES prompt_template (template_id) ON DELETE CASCADE
);

CREATE TABLE prompt_result (
    result_id    bigint      GENERATED ALWAYS AS IDENTITY,
    version_id   bigint,
    score        double precision NOT NULL,
    CONSTRAINT pk_prompt_result PRIMARY KEY (result_id),
    CONSTRAINT ck_prompt_result_score CHECK (score BETWEEN 0 AND 1),
    CONSTRAINT fk_prompt_result_version FOREIGN KEY (version_id)
        REFERENCES prompt_version (version_id) ON DELETE SET NULL
);
