package db

// The SQL of the overview's queries, for TestOverviewQueriesBounded.
var (
	UnlistedDomainsSQL = unlistedDomainsSQL
	UnlistedCountSQL   = unlistedCountSQL
	DomainsSeriesSQL   = domainsSeriesSQL
)
