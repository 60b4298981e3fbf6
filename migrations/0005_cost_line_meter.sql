-- A bill line may name the extension resource it is apportioned by (CostEvent.meter, schema
-- version 2). It is part of the line's checkpointed state: a line restored without it would be
-- split by its category after a restart, and the same input would give other figures.
ALTER TABLE tracker_cost_lines ADD COLUMN meter text;
