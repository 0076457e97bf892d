// CofferSunPKCS11 uses the Coffer PKCS#11 library through Java's SunPKCS11
// provider, as a Java application would. Arguments: the SunPKCS11
// configuration file, the PIN (username:password), and the label of a
// token AES key the caller created. It prints one line per check, in the
// form "name: value", and "OK" last; java_test.go asserts the lines.
import java.nio.charset.StandardCharsets;
import java.security.Key;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.Provider;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.KeyGenerator;
import javax.crypto.SecretKey;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

public class CofferSunPKCS11 {
    public static void main(String[] args) throws Exception {
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        String label = args[2];

        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, args[1].toCharArray());
        List<String> aliases = Collections.list(ks.aliases());
        System.out.println("aliases: " + aliases.size());
        System.out.println("listed " + label + ": " + aliases.contains(label));
        System.out.println("listed key is secret: " + ks.isKeyEntry(label));

        byte[] data = "signed through SunPKCS11".getBytes(StandardCharsets.UTF_8);
        KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC", p);
        kpg.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair kp = kpg.generateKeyPair();
        System.out.println("ec key pair: " + kp.getPrivate().getAlgorithm() + " " + kp.getPublic().getFormat());

        Signature signer = Signature.getInstance("SHA256withECDSA", p);
        signer.initSign(kp.getPrivate());
        signer.update(data);
        byte[] sig = signer.sign();
        Signature verifier = Signature.getInstance("SHA256withECDSA", p);
        verifier.initVerify(kp.getPublic());
        verifier.update(data);
        System.out.println("SHA256withECDSA verify (Coffer): " + verifier.verify(sig));
        // The public key, exported, verifies with Java's own provider.
        PublicKey exported = KeyFactory.getInstance("EC", "SunEC")
                .generatePublic(new X509EncodedKeySpec(kp.getPublic().getEncoded()));
        Signature sunEC = Signature.getInstance("SHA256withECDSA", "SunEC");
        sunEC.initVerify(exported);
        sunEC.update(data);
        System.out.println("SHA256withECDSA verify (SunEC): " + sunEC.verify(sig));
        verifier.initVerify(kp.getPublic());
        verifier.update("other data".getBytes(StandardCharsets.UTF_8));
        System.out.println("SHA256withECDSA verify other data: " + verifier.verify(sig));

        KeyGenerator kg = KeyGenerator.getInstance("AES", p);
        kg.init(256);
        SecretKey aes = kg.generateKey();
        System.out.println("AES/GCM/NoPadding generated key: " + gcm(p, aes));
        System.out.println("AES/GCM/NoPadding listed key: " + gcm(p, ks.getKey(label, null)));

        // A key stored through the KeyStore becomes a token object.
        String stored = label + "-stored";
        byte[] raw = new byte[32];
        new SecureRandom().nextBytes(raw);
        ks.setEntry(stored, new KeyStore.SecretKeyEntry(new SecretKeySpec(raw, "AES")), null);
        System.out.println("stored " + stored + ": " + Collections.list(ks.aliases()).contains(stored));
        System.out.println("AES/GCM/NoPadding stored key: " + gcm(p, ks.getKey(stored, null)));
        ks.deleteEntry(stored);
        System.out.println("deleted " + stored + ": " + !Collections.list(ks.aliases()).contains(stored));
        System.out.println("OK");
    }

    // gcm encrypts and decrypts with AAD, and checks that a changed
    // ciphertext fails its tag; it returns "round trip, tag checked".
    static String gcm(Provider p, Key key) throws Exception {
        byte[] iv = new byte[12];
        new SecureRandom().nextBytes(iv);
        byte[] aad = "header".getBytes(StandardCharsets.UTF_8);
        byte[] plain = "encrypted through SunPKCS11 with AES-GCM".getBytes(StandardCharsets.UTF_8);
        Cipher c = Cipher.getInstance("AES/GCM/NoPadding", p);
        c.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(128, iv));
        c.updateAAD(aad);
        byte[] ct = c.doFinal(plain);
        Cipher d = Cipher.getInstance("AES/GCM/NoPadding", p);
        d.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(128, iv));
        d.updateAAD(aad);
        boolean roundTrip = ct.length == plain.length + 16 && Arrays.equals(d.doFinal(ct), plain);
        ct[0] ^= 1;
        d.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(128, iv));
        d.updateAAD(aad);
        boolean tagChecked = false;
        try {
            d.doFinal(ct);
        } catch (AEADBadTagException e) {
            tagChecked = true;
        }
        return "round trip " + roundTrip + ", tag checked " + tagChecked;
    }
}
