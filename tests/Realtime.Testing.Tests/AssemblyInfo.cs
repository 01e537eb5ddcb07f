using Realtime.Testing;

// One broker and one redis-server for the whole assembly.
[assembly: AssemblyFixture(typeof(TestInfrastructure))]
