# A small analysis program for `rlm exec` (make demo runs it over examples/sample_context).
# It explores the read-only context the way model-written code does, then ends with FINAL(...).
import collections
import os

files = []
for root, _dirs, names in os.walk("/context"):
    for name in names:
        files.append(os.path.join(root, name))
print(f"{len(files)} files, {sum(os.path.getsize(f) for f in files):,} bytes")

levels = collections.Counter()
problems = collections.Counter()
for path in sorted(f for f in files if f.endswith(".log")):
    with open(path) as fh:
        for line in fh:
            _ts, level, service, message = line.split(maxsplit=3)
            levels[level] += 1
            if level != "INFO":
                problems[(service.rstrip(":"), message.strip())] += 1

print("lines by level:", dict(levels))
print("most frequent problems:")
for (service, message), count in problems.most_common(3):
    print(f"  {count:4}  {service:8} {message}")

(service, message), count = problems.most_common(1)[0]
FINAL(f"the most frequent problem is '{message}' in {service} ({count} times)")
