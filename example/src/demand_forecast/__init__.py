"""Retail demand forecasting: weekly unit sales per store and product."""

__version__ = "0.1.0"
