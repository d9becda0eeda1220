def make(n):
    rows = [{"i": i, "sq": i * i} for i in range(n)]
    return {"rows": rows, "note": f"{n} rows", "blob": {"n": n, "squares": tuple(r["sq"] for r in rows)}}


def total(upstream):
    made = upstream["make"]
    return {"total": sum(r["sq"] for r in made["rows"]), "note": made["note"], "blob_n": made["blob"]["n"]}


def shout(upstream):
    return f"total is {upstream['total']['total']}"


def report(upstream):
    # shout.txt was written by write_upper; the DAG-level read sees it as plain text
    return {"shout": upstream["shout"], "total": upstream["total"], "rows": len(upstream["make"]["rows"])}
