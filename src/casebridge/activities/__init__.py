"""Activities: time entries and expenses, with approval states and money totals."""
