-- Drop the library.
DROP TABLE publisher_of_the_books_in_this_library_whose_name_is_very_long;
DROP TABLE book;
DROP TABLE author;
