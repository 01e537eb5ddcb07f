using System.ComponentModel.DataAnnotations;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Realtime.Gateway;

/// <summary>
/// The certificate the gateway serves on an endpoint whose URL is <c>https://</c>
/// (<c>wss://</c> for WebSocket clients, gRPC over TLS with HTTP/2 by ALPN). Section
/// <c>Gateway:Tls</c>; unused while both endpoints are <c>http://</c>. Give either a PEM pair
/// (<see cref="CertificatePath"/>, <see cref="KeyPath"/>) or a PKCS#12 file
/// (<see cref="PfxPath"/>, <see cref="PfxPassword"/>), not both. The files are read once at
/// start: a renewed certificate takes effect with a restart (a rolling deploy).
/// </summary>
public sealed class GatewayTlsOptions
{
    /// <summary>The lowest TLS version served: 1.2 and 1.3 only.</summary>
    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>
    /// PEM file with the server certificate first, then any intermediate certificates, which are
    /// sent to clients with it (the full chain, as from cert-manager's <c>tls.crt</c>).
    /// </summary>
    public string? CertificatePath { get; set; }

    /// <summary>
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1, unencrypted; as
    /// cert-manager's <c>tls.key</c>). Unset: the key is read from <see cref="CertificatePath"/>.
    /// </summary>
    public string? KeyPath { get; set; }

    /// <summary>PKCS#12 (<c>.pfx</c>/<c>.p12</c>) file with the certificate, its private key and any intermediates; instead of the PEM pair.</summary>
    public string? PfxPath { get; set; }

    /// <summary>Password of <see cref="PfxPath"/>; unset for a file without one.</summary>
    public string? PfxPassword { get; set; }

    /// <summary>
    /// Reads the configured certificate with its private key and the intermediates to send with it.
    /// </summary>
    /// <exception cref="InvalidOperationException">Nothing or both kinds configured, or a file that cannot be read or holds no usable certificate and key; the message names the setting.</exception>
    public (X509Certificate2 Certificate, X509Certificate2Collection Chain) Load()
    {
        var pem = !string.IsNullOrWhiteSpace(CertificatePath);
        var pfx = !string.IsNullOrWhiteSpace(PfxPath);
        if (pem == pfx)
        {
            throw new InvalidOperationException(pem
                ? "Gateway:Tls:CertificatePath and Gateway:Tls:PfxPath are both set; set one of them."
                : "An https endpoint needs a certificate: set Gateway:Tls:CertificatePath (PEM, with Gateway:Tls:KeyPath) or Gateway:Tls:PfxPath.");
        }

        if (!pem && !string.IsNullOrWhiteSpace(KeyPath))
        {
            throw new InvalidOperationException("Gateway:Tls:KeyPath goes with Gateway:Tls:CertificatePath, not with Gateway:Tls:PfxPath.");
        }

        var setting = pem ? (string.IsNullOrWhiteSpace(KeyPath) ? "Gateway:Tls:CertificatePath" : "Gateway:Tls:CertificatePath / Gateway:Tls:KeyPath") : "Gateway:Tls:PfxPath";
        foreach (var (name, path) in new[] { ("Gateway:Tls:CertificatePath", CertificatePath), ("Gateway:Tls:KeyPath", KeyPath), ("Gateway:Tls:PfxPath", PfxPath) })
        {
            if (!string.IsNullOrWhiteSpace(path) && !File.Exists(path))
            {
                throw new InvalidOperationException($"{name}: no such file '{path}'.");
            }
        }

        X509Certificate2? certificate = null;
        try
        {
            X509Certificate2Collection chain;
            if (pem)
            {
                certificate = X509Certificate2.CreateFromPemFile(CertificatePath!, string.IsNullOrWhiteSpace(KeyPath) ? null : KeyPath);
                chain = [];
                chain.ImportFromPemFile(CertificatePath!);
            }
            else
            {
                chain = X509CertificateLoader.LoadPkcs12CollectionFromFile(PfxPath!, PfxPassword);
                certificate = chain.FirstOrDefault(c => c.HasPrivateKey)
                    ?? throw new InvalidOperationException($"{setting}: '{PfxPath}' holds no certificate with a private key.");
                chain.Remove(certificate);
            }

            // The leaf is served as the certificate; the rest of the file is its chain.
            foreach (var extra in chain.Where(c => c.RawDataMemory.Span.SequenceEqual(certificate.RawDataMemory.Span)).ToList())
            {
                chain.Remove(extra);
            }

            if (!certificate.HasPrivateKey)
            {
                throw new InvalidOperationException($"{setting}: the certificate has no private key.");
            }

            if (OperatingSystem.IsWindows())
            {
                // SChannel cannot use a key that lives only in memory (as PEM keys do).
                var persisted = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
                certificate.Dispose();
                certificate = persisted;
            }

            return (certificate, chain);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            certificate?.Dispose();
            throw new InvalidOperationException($"{setting}: cannot load the certificate and its private key: {e.Message}", e);
        }
        catch
        {
            certificate?.Dispose();
            throw;
        }
    }

    /// <summary>Checks that the configured certificate loads (for options validation at start).</summary>
    internal IEnumerable<ValidationResult> Validate(string endpointSetting)
    {
        string? error = null;
        try
        {
            var (certificate, chain) = Load();
            certificate.Dispose();
            foreach (var other in chain)
            {
                other.Dispose();
            }
        }
        catch (InvalidOperationException e)
        {
            error = $"{endpointSetting} is https: {e.Message}";
        }

        if (error is not null)
        {
            yield return new ValidationResult(error, [nameof(GatewayOptions.Tls)]);
        }
    }
}
