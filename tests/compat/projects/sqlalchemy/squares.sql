DROP TABLE IF EXISTS {{product}};
CREATE TABLE {{product}} AS
SELECT i, label, i * i AS sq FROM {{upstream['upload']}};
