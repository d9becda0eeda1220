DROP VIEW IF EXISTS {{product}};
CREATE VIEW {{product}} AS
SELECT i, label, sq FROM {{upstream['squares']}} WHERE sq > 3;
