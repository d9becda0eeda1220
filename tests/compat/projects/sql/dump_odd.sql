SELECT * FROM {{upstream['odd']}} ORDER BY i
