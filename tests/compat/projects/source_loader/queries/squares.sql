{% import "helpers.sql" as h %}
DROP TABLE IF EXISTS {{ product }};
CREATE TABLE {{ product }} AS {{ h.values_up_to(4) }};
