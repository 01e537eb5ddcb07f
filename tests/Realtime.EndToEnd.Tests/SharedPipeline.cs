using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>One two-gateway, one-fanout stack shared by the tests of a class.</summary>
public sealed class SharedPipeline(TestInfrastructure infrastructure) : IAsyncLifetime
{
    private LocalPipeline? _stack;

    public LocalPipeline Stack => _stack ?? throw new InvalidOperationException("Stack not started.");

    public async ValueTask InitializeAsync() => _stack = await LocalPipeline.StartAsync(infrastructure, "pipeline");

    public async ValueTask DisposeAsync()
    {
        if (_stack is not null)
        {
            await _stack.DisposeAsync();
        }
    }
}
