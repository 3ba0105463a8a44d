-- Create a library whose constraints are unnamed, so that parity must pair them by what they are.

CREATE TABLE author (
    author_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT    NOT NULL UNIQUE,
    nickname   TEXT,
    born       INTEGER CHECK (born > 1800)
) STRICT;

CREATE TABLE book (
    author_id  INTEGER NOT NULL REFERENCES author (author_id) ON DELETE CASCADE,
    book_no    INTEGER NOT NULL,
    title      TEXT    NOT NULL,
    isbn       TEXT,
    pages      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (author_id, book_no),
    UNIQUE (author_id, title),
    CHECK (pages >= 0),
    CHECK (pages < 100000),
    CHECK (length(title) BETWEEN 1 AND 500),
    CONSTRAINT ck_book_isbn_length CHECK (length(isbn) = 13)
) STRICT;

-- 62 characters: the names PostgreSQL chooses for its constraints are cut to 63 bytes.
CREATE TABLE publisher_of_the_books_in_this_library_whose_name_is_very_long (
    publisher_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_email  TEXT    NOT NULL UNIQUE,
    CHECK (length(contact_email) > 3),
    CHECK (length(contact_email) < 300)
) STRICT;

-- SQLite keeps NULLs first in an ASC key and last in a DESC one; these keys say so.
CREATE INDEX ix_author_nickname_born ON author (nickname, born DESC);

CREATE INDEX ix_book_title_pages ON book (title, pages DESC);

CREATE INDEX ix_book_isbn ON book (isbn COLLATE BINARY);

CREATE TRIGGER book_reject_change
    BEFORE UPDATE OF pages, isbn ON book
    FOR EACH ROW
    WHEN NEW.pages < OLD.pages OR NEW.isbn IS NOT OLD.isbn
BEGIN
    SELECT RAISE(ABORT, 'book: pages only grow and the isbn is fixed');
END;
