-- Create a library whose constraints are unnamed, so that parity must pair them by what they are.

CREATE TABLE author (
    author_id  bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text    NOT NULL UNIQUE,
    nickname   text,
    born       bigint  CHECK (born > 1800)
);

CREATE TABLE book (
    author_id  bigint  NOT NULL REFERENCES author (author_id) ON DELETE CASCADE,
    book_no    bigint  NOT NULL,
    title      text    NOT NULL,
    isbn       text,
    pages      bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (author_id, book_no),
    UNIQUE (author_id, title),
    CHECK (pages >= 0),
    CHECK (pages < 100000),
    CHECK (length(title) BETWEEN 1 AND 500),
    CONSTRAINT ck_book_isbn_length CHECK (length(isbn) = 13)
);

-- 62 characters: the names PostgreSQL chooses for its constraints are cut to 63 bytes.
CREATE TABLE publisher_of_the_books_in_this_library_whose_name_is_very_long (
    publisher_id   bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_email  text    NOT NULL UNIQUE,
    CHECK (length(contact_email) > 3),
    CHECK (length(contact_email) < 300)
);

-- SQLite keeps NULLs first in an ASC key and last in a DESC one; these keys say so.
CREATE INDEX ix_author_nickname_born ON author (nickname NULLS FIRST, born DESC NULLS LAST);

CREATE INDEX ix_book_title_pages ON book (title, pages DESC);

CREATE INDEX ix_book_isbn ON book (isbn COLLATE "C" NULLS FIRST);

CREATE FUNCTION book_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'book: pages only grow and the isbn is fixed';
END;
$$;

CREATE TRIGGER book_reject_change
    BEFORE UPDATE OF pages, isbn ON book
    FOR EACH ROW
    WHEN (NEW.pages < OLD.pages OR NEW.isbn IS DISTINCT FROM OLD.isbn)
    EXECUTE FUNCTION book_reject_change();
