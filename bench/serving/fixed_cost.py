"""A model whose every predict call costs 3 ms (like a small network's launch overhead), whatever its rows."""

import time


class FixedCost:
    def predict(self, rows):
        time.sleep(0.003)
        return [sum(row) for row in rows.tolist()]
