using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>One two-gateway, one-fanout stack with default settings.</summary>
public sealed class SharedPipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "pipeline");
