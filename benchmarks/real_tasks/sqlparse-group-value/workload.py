"""Parse a SQL script with sqlparse.parse(): statements with a long arithmetic
chain (a0 + a1 + ... + a89), a wide column list and a long IN list.

At the base, every new group computes its value with str(group), which walks
every leaf of the group's subtree, and extending an IdentifierList recomputes
it over the whole growing list: the chain's nested Operations and the long
lists cost O(N^2) (worse for the nested chain). The expert builds the value
from the children's values.
"""

import sqlparse

SQL = None
CHAIN = 80
COLS = 60
STATEMENTS = 1


def setup():
    global SQL
    stmts = []
    for s in range(STATEMENTS):
        chain = " + ".join("t.a%d" % i for i in range(CHAIN))
        cols = ", ".join("c%d" % i for i in range(COLS))
        ids = ", ".join(str(i) for i in range(COLS))
        stmts.append(
            "SELECT %s AS total_%d, %s FROM big_table t WHERE t.id IN (%s);" % (chain, s, cols, ids)
        )
    SQL = "\n".join(stmts)


def _shape(token):
    if token.is_group:
        return (type(token).__name__, [_shape(t) for t in token.tokens])
    return (str(token.ttype), token.value)


def workload():
    stmts = sqlparse.parse(SQL)
    return [(str(s), _shape(s)) for s in stmts]


# ruff: noqa: UP031
