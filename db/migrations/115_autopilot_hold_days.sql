-- The autopilot's hold days as a setting (docs/autopilot.md, "Settings"):
-- how many clean days a version must have been live before each of the
-- three raises of the max_age ramp. NULL takes the fleet default, then the
-- built-in {7, 14, 30}, as the other settings do.
ALTER TABLE autopilot_settings ADD COLUMN hold_days integer[]
	CONSTRAINT autopilot_settings_hold_days_check CHECK (hold_days IS NULL OR (
		array_ndims(hold_days) = 1 AND cardinality(hold_days) = 3
		AND array_position(hold_days, NULL) IS NULL
		AND 1 <= ALL (hold_days) AND 365 >= ALL (hold_days)));
