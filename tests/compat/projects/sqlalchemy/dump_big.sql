SELECT * FROM {{upstream['big']}} ORDER BY i
