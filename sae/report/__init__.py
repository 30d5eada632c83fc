"""Figures and tables of the report (reports/)."""
