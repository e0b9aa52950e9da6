"""Demand forecasting and replenishment: daily item sales, classic and neural forecasters, backtests, forecasts and the plan."""
