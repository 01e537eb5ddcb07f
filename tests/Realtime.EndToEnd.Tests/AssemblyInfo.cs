using Realtime.Testing;

// One broker and one redis-server for the whole assembly; each test isolates itself with a namespace.
[assembly: AssemblyFixture(typeof(TestInfrastructure))]

// Tests start real processes; on two cores they run one at a time.
[assembly: CollectionBehavior(CollectionBehavior.CollectionPerAssembly)]
