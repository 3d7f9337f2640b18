"""Sanctions screening (FATF R.6): the published lists, loaded, and the names screened against them."""
