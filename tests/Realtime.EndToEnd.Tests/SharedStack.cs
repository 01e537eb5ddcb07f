using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>One two-gateway, one-fanout stack shared by the tests of a class.</summary>
public sealed class SharedStack(TestInfrastructure infrastructure) : IAsyncLifetime
{
    private PipelineStack? _stack;

    public PipelineStack Stack => _stack ?? throw new InvalidOperationException("Stack not started.");

    public async ValueTask InitializeAsync() => _stack = await PipelineStack.StartAsync(infrastructure, "pipeline");

    public async ValueTask DisposeAsync()
    {
        if (_stack is not null)
        {
            await _stack.DisposeAsync();
        }
    }
}
