"""Sum of the primes up to n, for each query.

Input: a line q, then q lines each holding one integer n >= 0.
Output: for each query, the sum of all primes p <= n, one per line.
"""

import sys


def is_prime(m):
    if m < 2:
        return False
    d = 2
    while d * d <= m:
        if m % d == 0:
            return False
        d += 1
    return True


def prime_sum(n):
    total = 0
    for m in range(2, n + 1):
        if is_prime(m):
            total += m
    return total


def main():
    data = sys.stdin.read().split()
    if not data:
        return
    q = int(data[0])
    queries = [int(x) for x in data[1 : 1 + q]]
    out = [str(prime_sum(n)) for n in queries]
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))


if __name__ == "__main__":
    main()
