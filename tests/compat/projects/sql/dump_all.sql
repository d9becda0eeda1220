SELECT * FROM {{upstream['create']}} ORDER BY i
