DROP TABLE policy_sets;
