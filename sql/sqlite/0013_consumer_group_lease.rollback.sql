-- Drop consumer_group_lease; member checkpoints stay in subscription.
DROP TABLE consumer_group_lease;
