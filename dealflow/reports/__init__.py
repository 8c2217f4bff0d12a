"""Management reports: the handbook's measures, the weekly report's figures,
tables and charts, and the matrix in words."""
