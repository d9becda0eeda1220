DROP TABLE IF EXISTS {{product}};
CREATE TABLE {{product}} AS SELECT * FROM {{upstream['create']}} WHERE i % 2 = 1;
