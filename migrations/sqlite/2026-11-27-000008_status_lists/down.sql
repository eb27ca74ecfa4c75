DROP TABLE status_list_entries;
DROP TABLE status_list_blocks;
DROP TABLE status_list_counters;
