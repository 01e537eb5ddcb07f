using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// A self-signed server certificate for 127.0.0.1 (ECDSA P-256), written as PEM certificate and
/// key files for a gateway's <c>Gateway:Tls</c> settings. Clients trust it by pinning its
/// thumbprint; nothing is added to any trust store.
/// </summary>
public sealed class TestCertificate : IDisposable
{
    private TestCertificate(string directory, X509Certificate2 certificate)
    {
        Directory = directory;
        Certificate = certificate;
        CertificatePath = Path.Combine(directory, "tls.crt");
        KeyPath = Path.Combine(directory, "tls.key");
    }

    /// <summary>The temporary directory holding the files, deleted on dispose.</summary>
    public string Directory { get; }

    /// <summary>The certificate (public part) clients pin.</summary>
    public X509Certificate2 Certificate { get; }

    public string CertificatePath { get; }

    public string KeyPath { get; }

    /// <summary>Generates a certificate valid for a day, for the IP address 127.0.0.1, and writes its files.</summary>
    public static TestCertificate Create()
    {
        var directory = Path.Combine(Path.GetTempPath(), $"realtime-tls-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(directory);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var withKey = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var result = new TestCertificate(directory, X509CertificateLoader.LoadCertificate(withKey.RawData));
        File.WriteAllText(result.CertificatePath, withKey.ExportCertificatePem());
        File.WriteAllText(result.KeyPath, key.ExportPkcs8PrivateKeyPem());
        return result;
    }

    /// <summary>True when the server presented exactly this certificate (compared by SHA-256 thumbprint).</summary>
    public bool IsPresentedBy(X509Certificate? presented) =>
        presented is not null
        && presented.GetCertHash(HashAlgorithmName.SHA256).AsSpan().SequenceEqual(Certificate.GetCertHash(HashAlgorithmName.SHA256));

    /// <summary>A certificate validation callback that accepts this certificate and nothing else, whatever the chain says.</summary>
    public RemoteCertificateValidationCallback Pin => (_, presented, _, _) => IsPresentedBy(presented);

    /// <summary>An HTTP handler (HTTP/1.1 or HTTP/2 by ALPN) that trusts this certificate alone.</summary>
    public SocketsHttpHandler PinnedHandler() => new()
    {
        SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = Pin },
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };

    public void Dispose()
    {
        Certificate.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
    }
}
