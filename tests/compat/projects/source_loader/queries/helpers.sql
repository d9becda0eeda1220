{% macro values_up_to(n) -%}
{%- for i in range(1, n + 1) %}SELECT {{ i }} AS n, {{ i * i }} AS sq{{ " UNION ALL " if not loop.last }}{% endfor -%}
{%- endmacro %}
