// @meshhook/stats-widgets: Svelte 5 widgets for MeshHook's workflow execution-time statistics.
export { default as ExecutionTimeSummary } from './ExecutionTimeSummary.svelte';
export { default as ExecutionTimeTrend } from './ExecutionTimeTrend.svelte';
export { default as ExecutionTimeHistogram } from './ExecutionTimeHistogram.svelte';
export { default as WorkflowPercentileTable } from './WorkflowPercentileTable.svelte';
export { default as DateRangeControl } from './DateRangeControl.svelte';
export { default as StepBreakdown } from './StepBreakdown.svelte';
export { createStatisticsClient, describeError, StatisticsError, STATISTICS_PATH, QUEUE_PATH, STEPS_PATH } from './api.js';
export { formatDuration, formatDurationShort, formatCount, formatChange, formatBucket, formatRange, formatRatio } from './format.js';
export { PRESETS, presetRange, customRange, userTimeZone, autoGroupBy } from './range.js';
