enabled = yes
keep = 4
level = inc
[hook]
keep_snapshots = 3
