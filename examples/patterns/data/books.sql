-- examples/patterns/paginator.yaml reads this table page by page.
CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, year INTEGER);
INSERT INTO books (id, title, year) VALUES
  (3, 'The C Programming Language', 1978),
  (5, 'Structure and Interpretation of Computer Programs', 1985),
  (8, 'The Art of Computer Programming', 1968),
  (13, 'Programming Pearls', 1986),
  (21, 'The Mythical Man-Month', 1975),
  (34, 'Unix Network Programming', 1990),
  (55, 'Advanced Programming in the UNIX Environment', 1992);
